"""The call model: a pure state machine fed by AMI events; a call's legs, phases and who hung up."""
