"""The roles: scorer, joiner, learner. Each is a loop over its inputs."""
