"""Mock submissions for the end-to-end tests, each named by intent with its exact grade."""
