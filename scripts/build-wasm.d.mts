// Types for the plain-JavaScript build script, so tests import it checked.
export interface KernelLayoutTable {
  regions: Array<{ name: string; at: number; bytes: number }>;
  constants: Array<{ name: string; value: number | string }>;
}
export function readLayout(table?: KernelLayoutTable): { table: KernelLayoutTable; values: Map<string, number> };
export function expandWat(text: string, layout?: { table: KernelLayoutTable; values: Map<string, number> }): string;
export function compileKernel(): Promise<string>;
export function layoutModule(layout?: { table: KernelLayoutTable }): string;
