/** The error a promise is rejected with; a promise that resolves fails the test. */
export const rejection = <E>(promise: Promise<unknown> | undefined): Promise<E> =>
  (promise ?? Promise.resolve()).then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error as E,
  );

/** The error a function throws; a function that returns fails the test. */
export function thrownBy<E>(fn: () => unknown): E {
  try {
    fn();
  } catch (error) {
    return error as E;
  }
  throw new Error('expected an error');
}
