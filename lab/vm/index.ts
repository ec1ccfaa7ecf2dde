/** The VM layer's public surface: images, the QEMU runner, the boot benchmark. */
export { bootVm, probeKvm, guestCmdline, DEFAULT_TIMEOUTS, VmTarget } from './vm.ts';
export type { AccelChoice, BootOptions, BootTimes, KvmVerdict } from './vm.ts';
export { buildVmImage } from './image.ts';
export { buildRootfs } from './rootfs.ts';
export { pruneImageCache } from './image-cache.ts';
export type { Rootfs, VmImage } from './image-cache.ts';
export { loadRecipe, rootfsHash, RECIPE_DIR, DEFAULT_IMAGE_CACHE } from './recipe.ts';
export type { ImageOptions, Recipe } from './recipe.ts';
export { bootKernel } from './session.ts';
export type { BootKernelOptions } from './session.ts';
export { benchBoot, BOOT_TARGET_SECONDS } from '../commands/bench-boot.ts';
export type { BenchBootOptions, BootBenchResult, BootSample } from '../commands/bench-boot.ts';
export type { VmTuning, PinningResult, CpufreqResult } from './tuning.ts';
export type { ConsoleProblem, ConsoleProblemKind } from './console.ts';
export { FATAL_PROBLEMS } from './console.ts';
