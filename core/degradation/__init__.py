"""The degradation model: blur, shift and decimation operators, kernels, the kernel prior (FKP), the deep image prior and simulated stacks."""
