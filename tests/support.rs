//! Starting gauntlet's real servers on port 0 for tests, and reading what they saw.
//! Every helper returns a handle with the address; dropping it shuts the server down.
