import { ConfigError } from '../../src/errors.ts';

/**
 * EMR Serverless sizes a worker as its Spark cores and memory plus the memory overhead (10%, at least
 * 384 MB). Each worker here asks for 1 vCPU and 3 GB of Spark memory: 3.384 GB with overhead, inside a
 * 4 GB worker, the smallest memory a 1 vCPU worker can have above 2 GB.
 */
const WORKER = { cores: 1, sparkMemoryGb: 3, footprintGb: 4 } as const;

export type CommitJobSize = {
  driver: { cores: number; memoryGb: number };
  executor: { cores: number; memoryGb: number };
  /** Dynamic allocation never goes above this many executors. */
  maxExecutors: number;
  /** What one job can take at most, in vCPU and GB (driver and every executor at their footprint). */
  footprint: { cpu: number; memoryGb: number };
};

const number = (value: string, unit: string) => Number(value.replace(unit, '').trim());

/**
 * The commit job adopts staged files (it reads Parquet footers, writes manifests): a small driver and
 * a few small executors. Each of `maxConcurrency` jobs, one per table of a layer, gets an equal share of
 * the application's maximum capacity, so they all run at once instead of queueing behind one job that
 * took everything.
 */
export function commitJobSize(props: {
  maxCpu: string;
  maxMemory: string;
  maxConcurrency: number;
}): CommitJobSize {
  const cpu = number(props.maxCpu, 'vCPU');
  const memoryGb = number(props.maxMemory, 'GB');
  const shareCpu = Math.floor(cpu / props.maxConcurrency);
  const shareMemory = Math.floor(memoryGb / props.maxConcurrency);
  const maxExecutors = Math.min(
    Math.floor((shareCpu - WORKER.cores) / WORKER.cores),
    Math.floor((shareMemory - WORKER.footprintGb) / WORKER.footprintGb),
  );
  if (maxExecutors < 1)
    throw new ConfigError(
      `emr.maxCpu ${props.maxCpu} and emr.maxMemory ${props.maxMemory} cannot run ${props.maxConcurrency} commit jobs at once (maxConcurrency): each needs at least ${2 * WORKER.cores} vCPU and ${2 * WORKER.footprintGb} GB (a driver and one executor); raise emr.maxCpu/maxMemory or lower maxConcurrency`,
      {
        field: 'emr',
        maxCpu: props.maxCpu,
        maxMemory: props.maxMemory,
        maxConcurrency: props.maxConcurrency,
      },
    );
  const worker = { cores: WORKER.cores, memoryGb: WORKER.sparkMemoryGb };
  return {
    driver: worker,
    executor: worker,
    maxExecutors,
    footprint: {
      cpu: WORKER.cores * (1 + maxExecutors),
      memoryGb: WORKER.footprintGb * (1 + maxExecutors),
    },
  };
}

/** The size as spark-submit `--conf` flags. */
export function sparkSizeConf(size: CommitJobSize): string[] {
  return [
    `spark.driver.cores=${size.driver.cores}`,
    `spark.driver.memory=${size.driver.memoryGb}g`,
    `spark.executor.cores=${size.executor.cores}`,
    `spark.executor.memory=${size.executor.memoryGb}g`,
    'spark.dynamicAllocation.enabled=true',
    'spark.dynamicAllocation.minExecutors=1',
    'spark.dynamicAllocation.initialExecutors=1',
    `spark.dynamicAllocation.maxExecutors=${size.maxExecutors}`,
  ].map((conf) => `--conf ${conf}`);
}
