// Preloaded into each benchmark child (`node --import ./bench/usage.mjs ...`): on exit it writes the
// process's own peak RSS and CPU time to the file named by K2_BENCH_USAGE, so each side's numbers are
// its own and cover everything the process did (start-up included).
import { writeFileSync } from 'node:fs';

const out = process.env.K2_BENCH_USAGE;
if (out)
  process.on('exit', () => {
    const u = process.resourceUsage();
    const usage = {
      peakRssMb: Math.round(u.maxRSS / 1024),
      cpuMs: Math.round((u.userCPUTime + u.systemCPUTime) / 1000),
    };
    writeFileSync(out, JSON.stringify(usage));
  });
