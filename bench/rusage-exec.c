/* rusage-exec: run a command and report what it cost, for bench/.
 *
 *   rusage-exec [--self] RESULT_FD PROGRAM [ARG...]
 *
 * Forks, execs PROGRAM with the caller's environment, waits for it with
 * wait4(2) and writes one line to RESULT_FD:
 *
 *   <exit code> <wall ns> <user+sys cpu ns> <peak RSS KiB> [<own peak RSS KiB>]
 *
 * CPU and peak RSS cover PROGRAM and every descendant it waited for.  Why a
 * separate small program: Linux keeps the peak RSS of the memory image a
 * process had before execve(), so a monitor spawned straight from Python would
 * report Python's ~20 MiB as its own peak.  Forked from this tiny process, the
 * floor is a few hundred KiB.  The exit code reported is 128+N if PROGRAM died
 * of signal N.
 *
 * --self adds the fifth field: the peak RSS of PROGRAM's own process alone
 * (VmHWM), without the programs it ran (msg-recover runs `postfix check` or
 * slaptest, which wait4 would count as its peak).  It is read in PROGRAM's
 * exit stop, under ptrace(PTRACE_O_TRACEEXIT): the last moment its memory
 * still exists.  Only PROGRAM is traced, not its children.
 *
 * rusage-exec itself exits with that same code, so it can stand in for a
 * helper binary under an agent (bench/monitor's helper shims) without
 * changing what the agent sees; 2 and no line on RESULT_FD mean it failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long ns_of(struct timeval tv) { return (long long)tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL; }

/* VmHWM of pid in KiB, -1 if unreadable. */
static long own_peak_kib(pid_t pid) {
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int wait_child(pid_t pid, int *status, struct rusage *ru) {
    while (wait4(pid, status, __WALL, ru) < 0) {
        if (errno != EINTR) {
            perror("rusage-exec: wait4");
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    int self = argc > 1 && strcmp(argv[1], "--self") == 0;
    argv += self;
    argc -= self;
    if (argc < 3) {
        fprintf(stderr, "usage: rusage-exec [--self] RESULT_FD PROGRAM [ARG...]\n");
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
        if (self) {
            /* stop until the parent has set the trace options */
            if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0 || raise(SIGSTOP) != 0)
                _exit(127);
        }
        execv(argv[2], argv + 2);
        fprintf(stderr, "rusage-exec: exec %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    long own_kib = -1;
    if (wait_child(pid, &status, &ru) != 0)
        return 2;
    if (self) {
        if (!WIFSTOPPED(status) ||
            ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL)) != 0) {
            perror("rusage-exec: ptrace");
            kill(pid, SIGKILL);
            return 2;
        }
        int deliver = 0;
        for (;;) {
            ptrace(PTRACE_CONT, pid, NULL, (void *)(long)deliver);
            if (wait_child(pid, &status, &ru) != 0)
                return 2;
            if (!WIFSTOPPED(status))
                break;
            int event = status >> 16;
            if (event == PTRACE_EVENT_EXIT)
                own_kib = own_peak_kib(pid);
            /* event stops and our own SIGSTOP carry no signal to pass on */
            deliver = (event != 0 || WSTOPSIG(status) == SIGSTOP) ? 0 : WSTOPSIG(status);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    long long wall = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    long long cpu = ns_of(ru.ru_utime) + ns_of(ru.ru_stime);
    if (self)
        dprintf(fd, "%d %lld %lld %ld %ld\n", code, wall, cpu, ru.ru_maxrss, own_kib);
    else
        dprintf(fd, "%d %lld %lld %ld\n", code, wall, cpu, ru.ru_maxrss);
    return code;
}
