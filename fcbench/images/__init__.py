"""Build contexts, the offline base image and wheelhouses for the sample images."""
