import { operationUsage } from '../../src/usage/operation-usage';

// How one answered operation is counted, from the errors the client was given.
describe('what one operation counts as', () => {
  const count = (errors: { path?: string[]; extensions: Record<string, unknown> }[], cost: { prepaid?: number; actual?: number } = {}) =>
    operationUsage({ cost, errors, prepaid: undefined, charges: undefined });

  it('a budget that could not be decided (503 without a path) is a whole refusal, not an error', () => {
    expect(count([{ extensions: { code: 'SERVICE_UNAVAILABLE' } }], { prepaid: 5 })).toMatchObject({ refused: true, error: false, points: 0, refusals: [{ gate: 'unavailable' }] });
  });

  it('a field that failed on its own (503 with a path) is an error of an admitted operation', () => {
    expect(count([{ path: ['forecast'], extensions: { code: 'SERVICE_UNAVAILABLE' } }], { prepaid: 5, actual: 5 })).toMatchObject({ refused: false, error: true, points: 5, refusals: [] });
  });

  it('a field refused for its scope counts against that field, and the operation stays admitted', () => {
    expect(count([{ path: ['apiKeys'], extensions: { code: 'FORBIDDEN', coordinate: 'Query.apiKeys' } }], { prepaid: 4, actual: 1 })).toMatchObject({
      refused: false, points: 1, refunded: 3,
      refusals: [{ gate: 'scope', coordinate: 'Query.apiKeys' }],
      fields: [{ coordinate: 'Query.apiKeys', calls: 0, points: 0, refused: 1 }],
    });
  });

  it('a quota refusal is named as one; nothing is kept or refunded', () => {
    expect(count([{ extensions: { code: 'RATE_LIMITED', gate: 'operation', period: 'DAY' } }], { prepaid: 0 })).toMatchObject({ refused: true, points: 0, refunded: 0, refusals: [{ gate: 'quota' }] });
  });
});
