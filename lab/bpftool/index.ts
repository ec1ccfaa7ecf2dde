/**
 * The one entry point of the bpftool wrapper: every caller imports from here, and this file only
 * re-exports the modules that hold each object kind (run.ts runs `bpftool -j` and maps its
 * errors; bpffs.ts, prog.ts, map.ts, net.ts, perf.ts one kind each).
 *
 * The wrapper drives the kernel through the same tool a user would and never issues bpf()
 * syscalls of its own; every call runs on a Target, so it is the same on the host and in a guest.
 */
export { bpftoolBatch, bpftoolJson, type BatchEntry, type BpftoolCall, type ObjRef } from './run.ts';
export { checkPinPath, ensureBpffs, unpin } from './bpffs.ts';
export {
  load,
  loadAll,
  loadAllShared,
  objectMapNames,
  progList,
  progPin,
  progRun,
  progRunMany,
  progShow,
  type LoadOptions,
  type MapReuse,
  type ProgInfo,
  type ProgRunOptions,
  type ProgRunResult,
} from './prog.ts';
export {
  mapCreate,
  mapDelete,
  mapDump,
  mapLookup,
  mapPin,
  mapShow,
  mapUpdate,
  type MapCreateOptions,
  type MapEntry,
  type MapInfo,
  type MapValue,
} from './map.ts';
export {
  netAttachTcxIngress,
  netAttachXdp,
  netDetachXdp,
  netShow,
  tcxIngress,
  xdpAttached,
  type NetAttachOptions,
  type TcxProgram,
  type XdpAttachMode,
  type XdpAttachment,
} from './net.ts';
export { captureEvents, parseEventPipe, type PerfRecord } from './perf.ts';
