/** Writes Jest's totals to a JSON file so .ci/run can print `N passed, N failed`. */
const fs = require('node:fs');
const path = require('node:path');

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const out = process.env.CONDENSE_TEST_SUMMARY || path.join(process.cwd(), '.condense-test', 'summary.json');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    fs.writeFileSync(out, JSON.stringify({ passed: results.numPassedTests, failed, skipped: results.numPendingTests }));
  }
}
module.exports = SummaryReporter;
