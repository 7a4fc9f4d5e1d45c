// Placeholder until the native crate lands: nothing to build yet.
console.error('native: no crate yet, the JS datapath will be used');
