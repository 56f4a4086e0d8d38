"""Azure access layer: the client factory, the evidence tap, and replay/recording transports."""
