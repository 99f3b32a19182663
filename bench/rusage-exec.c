/* rusage-exec: run a command and report what it cost, for bench/.
 *
 *   rusage-exec RESULT_FD PROGRAM [ARG...]
 *
 * Forks, execs PROGRAM with the caller's environment, waits for it with
 * wait4(2) and writes one line to RESULT_FD:
 *
 *   <exit code> <wall ns> <user+sys cpu ns> <peak RSS KiB>
 *
 * CPU and peak RSS cover PROGRAM and every descendant it waited for.  Why a
 * separate small program: Linux keeps the peak RSS of the memory image a
 * process had before execve(), so a monitor spawned straight from Python would
 * report Python's ~20 MiB as its own peak.  Forked from this tiny process, the
 * floor is a few hundred KiB.  The exit code reported is 128+N if PROGRAM died
 * of signal N.
 *
 * rusage-exec itself exits with that same code, so it can stand in for a
 * helper binary under an agent (bench/monitor's helper shims) without
 * changing what the agent sees; 2 and no line on RESULT_FD mean it failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long ns_of(struct timeval tv) { return (long long)tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: rusage-exec RESULT_FD PROGRAM [ARG...]\n");
        return 2;
    }
    int fd = atoi(argv[1]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("rusage-exec: fork");
        return 2;
    }
    if (pid == 0) {
        close(fd);
        execv(argv[2], argv + 2);
        fprintf(stderr, "rusage-exec: exec %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("rusage-exec: wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    long long wall = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    dprintf(fd, "%d %lld %lld %ld\n", code, wall, ns_of(ru.ru_utime) + ns_of(ru.ru_stime), ru.ru_maxrss);
    return code;
}
