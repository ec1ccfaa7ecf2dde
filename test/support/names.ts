/**
 * A per-run tag for every host resource a test creates (namespaces, interfaces, bpffs pins), so
 * two runs of the suite on one machine, or a run and a crashed run's leftovers, never share a name.
 * Three characters: interface names are limited to 15, and testenv names to 12.
 */
export const RUN_TAG = (process.pid % 46656).toString(36).padStart(3, '0');
