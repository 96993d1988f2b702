import { csv } from '../../src/cli/output';

// What an operator opens in a spreadsheet: names and ids are data there, never formulas.
describe('the CLI\'s CSV fields', () => {
  it('quotes commas, quotes and line breaks, and keeps a formula-looking name from running', () => {
    expect(['2026-12-06T20:00:00.000Z', 12, null, 'Acme, Inc.', 'say "hi"'].map(csv).join(',')).toBe('2026-12-06T20:00:00.000Z,12,,"Acme, Inc.","say ""hi"""');
    expect(['=HYPERLINK("http://evil.example","x")', '+1', '-2+3', '@SUM(A1)'].map(csv)).toEqual([`"'=HYPERLINK(""http://evil.example"",""x"")"`, "'+1", "'-2+3", "'@SUM(A1)"]);
    expect(csv(-5)).toBe('-5'); // a number is a number
  });
});
