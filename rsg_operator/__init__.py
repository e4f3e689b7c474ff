"""rsg-operator: ResourceScalingGroup, coupled and group-atomic scaling for AI inference."""
