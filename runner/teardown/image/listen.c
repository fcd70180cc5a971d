/* Binds and listens on the reaper's port within a millisecond of the container's start, then hands the
 * listening socket (fd 3) to the reaper. A client that connects before the reaper is up waits in the
 * kernel's backlog instead of being dropped by the engine's port proxy, which accepts and closes a
 * connection to a port nobody listens on. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *text = getenv("RYUK_PORT");
    int port = text ? atoi(text) : 8080;
    int one = 1;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 128) < 0) {
        perror("listen");
        return 1;
    }
    if (listener != 3 && (dup2(listener, 3) < 0 || close(listener) < 0)) {
        perror("dup2");
        return 1;
    }
    setenv("RYUK_LISTEN_FD", "3", 1);
    if (argc < 2) {
        fprintf(stderr, "usage: listen COMMAND [ARG...]\n");
        return 2;
    }
    execvp(argv[1], argv + 1);
    perror("exec");
    return 1;
}
