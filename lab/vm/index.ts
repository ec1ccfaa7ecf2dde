/** The VM layer's public surface: images, the QEMU runner, the boot session. */
export { bootVm, probeKvm, guestCmdline, DEFAULT_TIMEOUTS, VmTarget } from './vm.ts';
export type { AccelChoice, BootOptions, BootTimes, KvmVerdict } from './vm.ts';
export { buildRootfs, buildVmImage, loadRecipe, rootfsHash, pruneImageCache, RECIPE_DIR, DEFAULT_IMAGE_CACHE } from './image.ts';
export type { ImageOptions, Rootfs, VmImage, Recipe } from './image.ts';
export { bootKernel } from './session.ts';
export type { BootKernelOptions } from './session.ts';
export type { VmTuning, PinningResult, CpufreqResult } from './tuning.ts';
export type { ConsoleProblem, ConsoleProblemKind } from './console.ts';
export { FATAL_PROBLEMS } from './console.ts';
