# The operator image: one statically linked binary and a CA bundle on an empty base. No shell, no
# libc, no package manager, nothing to patch but the binary; runs as the non-root user 65532 (the Deployment enforces it).
#
# The binary is built before the image, not in it (no toolchain image to pull, the same binary the
# tests ran):
#
#   make image     # = make static (cargo, -C target-feature=+crt-static), strip into target/image/
#                  #   with Debian's CA bundle, then buildah bud (or docker build . after the same steps)
#
# Static glibc and name lookups: the operator reaches the API server at the address Kubernetes gives
# it (KUBERNETES_SERVICE_HOST, an IP), so in the cluster it resolves no name. A kubeconfig naming a
# host (`check` from the image) is resolved from /etc/hosts and DNS by glibc's built-in files and dns
# lookups (make image-test checks `localhost`); nothing else from /etc/nsswitch.conf is available.
FROM scratch
ARG BINARY=target/image/support-operator
COPY --chmod=0555 ${BINARY} /usr/local/bin/support-operator
# The TLS client trusts the system's CA bundle for API servers whose kubeconfig gives no CA (without
# one it refuses to start even for http://). In the cluster the service account's ca.crt is used.
COPY --chmod=0444 target/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# A container runtime searches PATH for the Deployment's `command: [support-operator]`.
ENV PATH=/usr/local/bin
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/support-operator"]
CMD ["run"]
LABEL org.opencontainers.image.title="support-operator" \
      org.opencontainers.image.description="Makes managed-Kubernetes support policies visible and alertable before the deadline" \
      org.opencontainers.image.source="https://github.com/support-operator/support-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
