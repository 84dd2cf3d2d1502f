"""Who gets a new lead: routing table, round-robin, least busy; absences and deputies."""
