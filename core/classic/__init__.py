"""Classic multi-frame super-resolution: registration, agreement weights, bicubic and IBP."""
