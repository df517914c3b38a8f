import { createMemoryWatermarkStore } from '../../src/watermark/memory.ts';
import { watermarkStoreContract } from './contract.ts';

watermarkStoreContract('memory', async (clock, process) => createMemoryWatermarkStore({ clock, process }));
