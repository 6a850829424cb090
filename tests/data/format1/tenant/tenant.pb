
acmeAcme Pharmaé¢èš¤4