"""Stage 3: simulated therapy sessions (therapist against patient) and the patient's questionnaires."""
