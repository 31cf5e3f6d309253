"""The human command line: `sshkeep status|ls|attach|logs|service …`."""
