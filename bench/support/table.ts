// Benchmarks print with the same table formatter as the CLI.
export { formatCell, formatTable, printTable, type Cell } from '../../src/core/report/text-table';
