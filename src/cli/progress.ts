import type { WatermarkStore } from '../watermark/types.ts';

export type CursorMove = { table: string; cursor: string; rows: number; outcome: 'committed' | 'reconciled' };

/**
 * The store, reporting every cursor move (a committed batch, a reconcile) as the cycle makes it: the
 * progress a long `run` or `catch-up` shows while it works.
 */
export function observeCursorMoves(
  store: WatermarkStore,
  onMove: (move: CursorMove) => void,
): WatermarkStore {
  return {
    ...store,
    advance: async (input) => {
      const result = await store.advance(input);
      onMove({ table: input.table, cursor: input.windowEnd, rows: input.rows, outcome: 'committed' });
      return result;
    },
    reconcile: async (input) => {
      const result = await store.reconcile(input);
      onMove({ table: input.table, cursor: input.windowEnd, rows: 0, outcome: 'reconciled' });
      return result;
    },
  };
}
