"""A small payment-provider service the example shop calls; it can be told to be slow or to fail."""
