"""Tables people can read, with their findings, and plots, for both studies."""
