const DAY = 86_400_000;

/**
 * The instant a test file's world stands still at: noon (UTC) of the day before the run, read from the
 * wall clock once, when the file loads. Every clock the product reads is set to it and every row is
 * placed relative to it, so no outcome depends on when the suite starts or how long it takes. Not a
 * constant, because ClickHouse deletes rows by TTL (7 days on bronze) against its real clock; noon, so
 * that the few hours of data a test places around it never straddle a day, month or year.
 */
export const TEST_NOW: Date = new Date(Math.floor(Date.now() / DAY) * DAY - DAY / 2);
