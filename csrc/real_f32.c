/* real_f32.c — instantiates the generic numeric sources for REAL = float. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define REAL float
#define SFX(name) name##_f32
#define NR PYNET_NR_F32
#define MC PYNET_MC_F32
#define KC PYNET_KC_F32
#define NC PYNET_NC_F32
#define R_FABS fabsf
#if PYNET_X86_SIMD
#define VEC_SGD pynet_sgd_avx2_f32
#define VEC_SGD_NOTRACK pynet_sgd_avx2_notrack_f32
#define VEC_ANY_NONFINITE pynet_any_nonfinite_avx2_f32
#define VEC_RELU_FORWARD pynet_relu_forward_avx2_f32
#define UKR_NOPACK pynet_ukr_nopack_f32
#define NOPACK_ROWS pynet_nopack_rows_f32
#define VEC_RELU_BACKWARD pynet_relu_backward_avx2_f32
#define VEC_GEMV_N1 pynet_gemv_n1_avx2_f32
#define VEC_PACK_BT pynet_pack_bt_avx2_f32
#define VEC_PACK_A6 pynet_pack_a6_avx2_f32
#define VEC_RANK1 pynet_rank1_avx2_f32
#define VEC_TILE_EP pynet_tile_ep_avx2_f32
#define VEC_UKR_EP pynet_ukr_ep_avx2_f32
#define VEC_UKR_EP512 pynet_ukr_ep_avx512_f32
#endif

#define VM_MATH pynet_vm_math_f32
#define VM_ACT_BACKWARD pynet_vm_act_backward_f32

#include "ukernel_scalar.c"
#include "gemm.c"
#include "dense.c"
#include "activations.c"
#include "losses.c"
#include "optimizers.c"
#include "train.c"
