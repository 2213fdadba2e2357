import os from 'node:os';

/** What a run records about the machine it ran on. */
export function describeHardware(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    platform: `${os.platform()} ${os.release()}`,
    arch: os.arch(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCores: cpus.length,
    memoryBytes: os.totalmem(),
    node: process.version,
  };
}
