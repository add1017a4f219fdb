/* real_f64.c — instantiates the generic numeric sources for REAL = double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define REAL double
#define SFX(name) name##_f64
#define NR PYNET_NR_F64
#define MC PYNET_MC_F64
#define KC PYNET_KC_F64
#define NC PYNET_NC_F64
#define R_FABS fabs

#define VM_MATH pynet_vm_math_f64
#define VM_ACT_BACKWARD pynet_vm_act_backward_f64

#include "ukernel_scalar.c"
#include "gemm.c"
#include "dense.c"
#include "activations.c"
#include "losses.c"
#include "optimizers.c"
#include "train.c"
