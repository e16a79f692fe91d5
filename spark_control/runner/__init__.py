"""Everything that runs a playbook: ansible-runner jobs, their events, phases and streams."""
