"""One module per `fleetwise` command: parse options, call measure/ or planner/, hand objects to render/."""
