"""The local serverless GPU harness: gateway, pure scheduler, runtimes, GPUs and metering."""
