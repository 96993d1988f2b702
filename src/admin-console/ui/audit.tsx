export function Audit() { return <h1 tabIndex={-1}>Audit</h1>; }
