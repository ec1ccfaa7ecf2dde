/**
 * Which hook a program chains on, read from its section as libbpf reads it, and the hook's
 * verdicts by name: naming, parsing (a verdict of the other hook's vocabulary is refused with the
 * reason), defaults.
 */
import { LabError } from '../errors.ts';
import { HOOKS, HOOK_VERDICTS, type Hook } from './constants.ts';

/**
 * libbpf's section names (libbpf.c section_defs) for the two program types: "xdp", "xdp/…",
 * "xdp.frags…" are BPF_PROG_TYPE_XDP; "tc", "tc/ingress|egress", "tcx/ingress|egress",
 * "classifier…" and netkit's "netkit/primary|peer" (whose NETKIT_* verdicts are TC's numbers) are
 * BPF_PROG_TYPE_SCHED_CLS. null: neither ("action" is sched_act, whose verdicts differ).
 */
export function hookOfSection(section: string): Hook | null {
  if (section.startsWith('xdp')) return 'xdp';
  if (section === 'tc' || section === 'classifier' || section.startsWith('classifier/')) return 'sched_cls';
  if (/^(tc|tcx)\/(ingress|egress)$/.test(section) || /^netkit\/(primary|peer)$/.test(section)) return 'sched_cls';
  return null;
}

/** A verdict as its hook names it, or the number when it has no name. */
export function verdictName(hook: Hook, v: number): string {
  const hit = Object.entries(HOOK_VERDICTS[hook].names).find(([, n]) => n === v);
  return hit ? hit[0] : String(v);
}

/** "ok=0, shot=2, …" for help texts and remedies. */
export function verdictHelp(hook: Hook): string {
  const h = HOOK_VERDICTS[hook];
  return `${h.label} verdicts: ${Object.entries(h.names).map(([k, v]) => `${k}=${v}`).join(', ')}`;
}

/**
 * "ok,redirect" / "0,7" / "TC_ACT_OK" / "none" → the hook's verdict numbers. A name of the other
 * hook's vocabulary is refused, not guessed: "pass" means XDP_PASS (2), which on TC is TC_ACT_SHOT.
 */
export function parseVerdictList(text: string, hook: Hook, what: string): number[] {
  const h = HOOK_VERDICTS[hook];
  if (text.trim() === '' || text.trim().toLowerCase() === 'none') return [];
  const out: number[] = [];
  for (const raw of text.split(',')) {
    const word = raw.trim().toLowerCase();
    if (word === '') continue;
    const name = word.replace(hook === 'xdp' ? /^xdp_/ : /^tc_act_/, '');
    let v: number;
    if (/^-?\d+$/.test(word)) v = Number(word);
    else if (Object.hasOwn(h.names, name)) v = h.names[name]!;
    else {
      const other = HOOKS.find((k) => k !== hook && Object.hasOwn(HOOK_VERDICTS[k].names, word.replace(/^(xdp_|tc_act_)/, '')));
      const why = other ? `${HOOK_VERDICTS[other].article} ${HOOK_VERDICTS[other].label} verdict name, and this program's hook is ${h.label} (${hook})` : `not ${h.article} ${h.label} verdict`;
      throw new LabError('BAD_INPUT', `${what}: "${raw.trim()}" is ${why}`, { remedy: `Use the hook's own names or numbers (${verdictHelp(hook)}; "none" for an empty set).` });
    }
    if (v < h.min || v > h.max) {
      throw new LabError('BAD_INPUT', `${what}: ${v} is out of the ${h.label} verdict range ${h.min}..${h.max}`, { remedy: `Use a verdict the hook returns (${verdictHelp(hook)}).` });
    }
    if (!out.includes(v)) out.push(v);
  }
  return out;
}
