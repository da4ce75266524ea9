"""What supervisors see beyond the ACD's decisions: who listens to whom, and the agents' day figures."""
