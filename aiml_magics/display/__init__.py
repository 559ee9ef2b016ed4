"""How an answer reads: untrusted text made inert, the final view, live rendering, columns, snippets.

It reads responses for their types only; it never imports the session, sources, batch,
comparison or the wire."""
