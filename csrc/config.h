/* config.h — GEMM blocking sizes and threading threshold, in one place (BLIS style).
 *
 * MR×NR is the register tile of the micro-kernel (6×16 floats = 12 ymm accumulators; 6×8 doubles
 * likewise). float32's KC is deep: a whole 1024-deep k in one slab (MNIST's 784 and the wide
 * network's 1024), so C is loaded and stored once per tile instead of once per 256-deep slab; the
 * KC×NR panel of packed B (64 KiB) then streams from L2 with the A panel, which Zen 3's L2 feeds
 * at the micro-kernel's rate. Same-run A/Bs against KC 256 (docs/performance.md): wide epoch −1.5
 * to −8 %, 512×1024×1024 GEMM +2 to +13 %, one thread no slower (MC×KC of A, 576 KiB, then
 * overflows L2 without a measurable cost; MC 96 and 72 were not faster). float64 keeps KC 256
 * (16 KiB of B in L1; not re-measured). KC×NC of packed B sits in L3.
 * The scalar and SIMD micro-kernels share MR/NR because they share the packing format. */
#ifndef PYNET_CONFIG_H
#define PYNET_CONFIG_H

#define PYNET_MR      6

#define PYNET_NR_F32  16
#define PYNET_MC_F32  144
#define PYNET_KC_F32  1024
#define PYNET_NC_F32  4096

#define PYNET_NR_F64  8
#define PYNET_MC_F64  72
#define PYNET_KC_F64  256
#define PYNET_NC_F64  2048

/* Below this many multiply-adds (m·n·k) a GEMM runs on one thread: the fork/join and the barriers
 * cost more than they save. Measured on the 2-core Zen 3 box (see docs/performance.md). */
#define PYNET_PAR_MIN_MACS (96.0 * 96.0 * 96.0)

/* GEMMs whose A (m×k, read in place once per NR-wide panel) fits in this many bytes — about one
 * core's L2 — take the panel path (B packed per panel by the thread that claims it, no barrier);
 * larger ones the packed BLIS path, which keeps an MC×KC block of A in L2 across the whole NC
 * panel. Measured: MNIST-shaped 128×784 and 784×128 A (392 KiB) faster on the panel path; the wide
 * network's 512×1024 and 1024×512 (2 MiB) about 20 % faster packed (docs/performance.md). */
#define PYNET_PANELS_MAX_A_BYTES (512.0 * 1024.0)

/* The packed path packs this many bytes of B (whole KC slabs) between two barriers: the wide
 * network's 1024×1024 B entirely (4 MiB, one barrier per GEMM); 2048² in two groups (L3: 32 MiB). */
#define PYNET_PACKB_GROUP_BYTES (8.0 * 1024.0 * 1024.0)

/* Rows of the blocks threads claim in the packed path (at most MC): small blocks, so a thread the host
 * delays hands its share to the other instead of holding it up at the GEMM's end. Wide network, same-run
 * A/B against 132-row blocks: 748 -> 681 ms (72 rows: 700; 36 and 24 within noise of 48). */
#define PYNET_MC_PAR 48

/* Column parts the packed path's last nt blocks are split into (see gemm_slab_groups). */
#define PYNET_TAIL_SPLIT 4

/* Alignment of the packing buffers (a cache line; NR floats per k-row = 64 bytes). */
#define PYNET_ALIGN 64

#endif
