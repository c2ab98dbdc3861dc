// Reads a process's CPU time and resident memory from /proc (Linux), from outside the process:
// the benchmark measures its servers without asking them (a server whose event loop is busy
// still gets measured on time). CPU time covers every thread of the process, as
// process.cpuUsage() would.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User and system CPU time of `pid` so far, in ms (10 ms resolution), or undefined when it is gone. */
export function cpuTimes(pid: number): { userMs: number; sysMs: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const tick = 1000 / clockTicks();
    return { userMs: Number(fields[11]) * tick, sysMs: Number(fields[12]) * tick };
  } catch {
    return undefined;
  }
}

/** User + system CPU time of `pid` so far, in ms, or undefined when it is gone. */
export function cpuMs(pid: number): number | undefined {
  const times = cpuTimes(pid);
  return times && times.userMs + times.sysMs;
}

/** Resident set size of `pid` in MiB, or undefined when it is gone. */
export function rssMiB(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The CPU model, for the report. */
export function cpuModel(): string {
  try {
    const [, model] = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8')) ?? [];
    return model?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** CPU time the whole machine spent busy so far (all cores, user + system + irq + steal), in ms. */
export function machineBusyMs(): number | undefined {
  try {
    const [line = ''] = readFileSync('/proc/stat', 'utf8').split('\n', 1);
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice; a missing field makes it NaN
    const [user = NaN, nice = NaN, system = NaN, , , irq = NaN, softirq = NaN, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return ((user + nice + system + irq + softirq + (steal || 0)) * 1000) / clockTicks();
  } catch {
    return undefined;
  }
}
