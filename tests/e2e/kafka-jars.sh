#!/usr/bin/env bash
# Kafka's jars for the kafka-cluster scenario: org.apache.kafka:kafka_2.13 and kafka-tools (and
# the log4j2 SLF4J binding that Kafka's distribution ships)
# $KAFKA_VERSION from Maven Central with their runtime dependencies, through
# `mvn dependency:copy-dependencies`, cached outside the repository (not in the image, not in
# git): $PEERCONF_KAFKA_CACHE/<version>/libs, default /var/cache/peerconf-kafka. Idempotent:
# does nothing when the jars are there. Needs Maven and a JDK (apt: maven, default-jdk-headless).
set -euo pipefail
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
dir=${PEERCONF_KAFKA_CACHE:-/var/cache/peerconf-kafka}/$KAFKA_VERSION
if compgen -G "$dir/libs/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
    echo "kafka-jars: $dir/libs has Kafka $KAFKA_VERSION ($(ls "$dir/libs" | wc -l) jars)"
    exit 0
fi
mkdir -p "$dir"
cat >"$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>peerconf.e2e</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- The SLF4J binding Kafka's own distribution ships, so the server logs through log4j2. -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
echo "kafka-jars: mvn dependency:copy-dependencies (Kafka $KAFKA_VERSION) into $dir/libs"
(cd "$dir" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=libs)
ls "$dir/libs/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
