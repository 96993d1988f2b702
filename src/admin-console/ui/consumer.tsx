export function ConsumerPage({ id }: { id: string }) { return <h1 tabIndex={-1}>Consumer {id}</h1>; }
