// Package docker holds the container setup of Inarious: docker/Dockerfile
// (the image of the binary), docker/docker-compose.yml (Kafka, ArangoDB, the
// API and scalable workers) and docker/.env.example (every setting of it).
//
// It has no code of its own. Its tests load the compose file with the
// compose-spec loader and check it, and the Dockerfile, against the binary:
// the environment variables it is given, the build flags in
// docker/buildflags.txt, the health checks and dependencies, and the ports.
// No docker engine is needed to run them.
package docker
