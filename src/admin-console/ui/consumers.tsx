export function Consumers() { return <h1 tabIndex={-1}>Consumers</h1>; }
