export function Plans() { return <h1 tabIndex={-1}>Plans</h1>; }
