#pragma once
// STRATA_TARGET_BEGIN("avx2,fma") ... STRATA_TARGET_END: every function
// defined between them is compiled for those instruction sets (the rest of
// the program stays baseline x86-64, and a CPU feature probe decides at run
// time which to call). GCC spells it push_options/target, clang an
// attribute push; both are needed (the fuzz build is clang's).
#define STRATA_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define STRATA_TARGET_BEGIN(features) \
  STRATA_PRAGMA(clang attribute push(__attribute__((target(features))), apply_to = function))
#define STRATA_TARGET_END STRATA_PRAGMA(clang attribute pop)
#else
#define STRATA_TARGET_BEGIN(features) STRATA_PRAGMA(GCC push_options) STRATA_PRAGMA(GCC target(features))
#define STRATA_TARGET_END STRATA_PRAGMA(GCC pop_options)
#endif
