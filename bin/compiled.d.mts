export declare const COMPILED_DIR: string;
export declare const ENTRY: string;
export declare const MANIFEST: string;
export type SourceEntry = { size: number; mtimeMs: number; sha256: string };
export declare function describeSources(root: string, files: string[]): Record<string, SourceEntry>;
export declare function currentBuild(root: string): string | null;
