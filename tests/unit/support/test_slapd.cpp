#include "test_slapd.hpp"

#include "probe_checks.hpp"

#include "msg/child_process.hpp"
#include "msg/deadline.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace msg_test {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* slapd_program = "/usr/sbin/slapd";

void write_file(const fs::path& file, const std::string& content)
{
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out)
        throw std::runtime_error("test slapd: cannot write " + file.string());
}

// Everything below `dir` to openldap:openldap, as slapd -u/-g needs it.
void give_to_openldap(const fs::path& dir)
{
    const passwd* user = ::getpwnam("openldap");
    const group* grp = ::getgrnam("openldap");
    if (user == nullptr || grp == nullptr)
        throw std::runtime_error("test slapd: no openldap user or group (is slapd installed?)");
    ::lchown(dir.c_str(), user->pw_uid, grp->gr_gid);
    for (const auto& entry : fs::recursive_directory_iterator(dir))
        ::lchown(entry.path().c_str(), user->pw_uid, grp->gr_gid);
}

std::string config_ldif(const fs::path& dir, const slapd_setup& setup)
{
    std::ostringstream ldif;
    ldif << "dn: cn=config\n"
            "objectClass: olcGlobal\n"
            "cn: config\n"
         << "olcPidFile: " << (dir / "run" / "slapd.pid").string() << "\n"
         << "olcArgsFile: " << (dir / "run" / "slapd.args").string() << "\n"
         << "olcLogLevel: none\n";
    if (setup.tls) {
        ldif << "olcTLSCertificateFile: " << (dir / "tls" / "server.pem").string() << "\n"
             << "olcTLSCertificateKeyFile: " << (dir / "tls" / "server.key").string() << "\n";
    }
    ldif << "\n"
            "dn: cn=module{0},cn=config\n"
            "objectClass: olcModuleList\n"
            "cn: module{0}\n"
            "olcModulePath: /usr/lib/ldap\n"
            "olcModuleLoad: back_mdb\n";
    if (setup.syncprov)
        ldif << "olcModuleLoad: syncprov\n";
    ldif << "\n"
            "dn: cn=schema,cn=config\n"
            "objectClass: olcSchemaConfig\n"
            "cn: schema\n"
            "\n"
            "include: file:///etc/ldap/schema/core.ldif\n"
            "include: file:///etc/ldap/schema/cosine.ldif\n"
            "include: file:///etc/ldap/schema/nis.ldif\n"
            "include: file:///etc/ldap/schema/inetorgperson.ldif\n"
            "\n"
            "dn: olcDatabase={-1}frontend,cn=config\n"
            "objectClass: olcDatabaseConfig\n"
            "objectClass: olcFrontendConfig\n"
            "olcDatabase: {-1}frontend\n"
            "olcSizeLimit: 500\n"
            "olcAccess: {0}to * by * read\n"
            "\n"
            "dn: olcDatabase={0}config,cn=config\n"
            "objectClass: olcDatabaseConfig\n"
            "olcDatabase: {0}config\n"
            "olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage"
            " by * break\n"
            "\n"
            "dn: olcDatabase={1}mdb,cn=config\n"
            "objectClass: olcDatabaseConfig\n"
            "objectClass: olcMdbConfig\n"
            "olcDatabase: {1}mdb\n"
         << "olcSuffix: " << test_slapd::suffix << "\n"
         << "olcRootDN: " << test_slapd::root_dn << "\n"
         << "olcRootPW: " << test_password << "\n"
         << "olcDbDirectory: " << (dir / "db").string() << "\n"
         << "olcDbMaxSize: " << setup.maxsize_bytes << "\n"
         << "olcDbIndex: objectClass eq\n"
            "olcAccess: {0}to * by * read\n";
    if (setup.syncprov) {
        ldif << "\n"
                "dn: olcOverlay=syncprov,olcDatabase={1}mdb,cn=config\n"
                "objectClass: olcOverlayConfig\n"
                "objectClass: olcSyncProvConfig\n"
                "olcOverlay: syncprov\n";
    }
    return ldif.str();
}

const char* data_ldif = "dn: dc=example,dc=com\n"
                        "objectClass: dcObject\n"
                        "objectClass: organization\n"
                        "dc: example\n"
                        "o: Example\n"
                        "\n"
                        "dn: cn=monitor-probe,dc=example,dc=com\n"
                        "objectClass: organizationalRole\n"
                        "cn: monitor-probe\n"
                        "description: written by the write probe\n";

std::string run_checked(const std::string& program, const std::vector<std::string>& args)
{
    msg::child_command command;
    command.program = program;
    command.args = args;
    const auto run = msg::run_child(command, msg::deadline::after(30s));
    if (!run.succeeded())
        throw std::runtime_error("test slapd: " + program + " " + run.describe_end() + ": " + run.err + run.out);
    return run.out;
}

bool connects(int family, const sockaddr* address, socklen_t length)
{
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = fd >= 0 && ::connect(fd, address, length) == 0;
    if (fd >= 0)
        ::close(fd);
    return ok;
}

bool tcp_answers(std::uint16_t port)
{
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    return connects(AF_INET, reinterpret_cast<const sockaddr*>(&address), sizeof address);
}

} // namespace

std::string ldapi_uri_for(const fs::path& socket)
{
    std::string uri = "ldapi://";
    for (const char c : socket.string()) {
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') {
            uri += c;
        } else {
            char escaped[4];
            std::snprintf(escaped, sizeof escaped, "%%%02X", static_cast<unsigned char>(c));
            uri += escaped;
        }
    }
    return uri;
}

test_slapd::test_slapd(slapd_setup setup) : setup_(std::move(setup))
{
    const fs::path& base = dir_.path();
    // temp_dir is private to root; slapd runs as openldap.
    fs::permissions(base, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec
                              | fs::perms::others_read | fs::perms::others_exec);
    for (const char* sub : {"slapd.d", "run", "db", "tls"})
        fs::create_directory(base / sub);
    if (setup_.tls) {
        write_file(base / "tls" / "server.pem", setup_.tls->certificate);
        write_file(base / "tls" / "server.key", setup_.tls->private_key);
    }
    write_file(base / "config.ldif", config_ldif(base, setup_));
    write_file(base / "data.ldif", data_ldif);
    run_checked("slapadd", {"-n0", "-F", config_dir().string(), "-l", (base / "config.ldif").string()});
    run_checked("slapadd", {"-n1", "-F", config_dir().string(), "-l", (base / "data.ldif").string()});
    give_to_openldap(base);
    // The password file stays root's, as msg-probe demands.
    write_file(password_file(), test_password);
    fs::permissions(password_file(), fs::perms::owner_read | fs::perms::owner_write);
    port_ = free_port();
    if (setup_.tls)
        tls_port_ = free_port();
}

test_slapd::~test_slapd()
{
    stop();
}

std::string test_slapd::ldap_uri() const
{
    return "ldap://127.0.0.1:" + std::to_string(port_);
}

std::string test_slapd::ldaps_uri() const
{
    return setup_.tls ? "ldaps://127.0.0.1:" + std::to_string(tls_port_) : std::string();
}

std::string test_slapd::ldapi_uri() const
{
    return ldapi_uri_for(socket_path());
}

std::string test_slapd::log() const
{
    std::ifstream in(dir_.path() / "slapd.log");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

bool test_slapd::answering() const
{
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path().c_str(), sizeof address.sun_path - 1);
    return tcp_answers(port_) && (tls_port_ == 0 || tcp_answers(tls_port_))
           && connects(AF_UNIX, reinterpret_cast<const sockaddr*>(&address), sizeof address);
}

void test_slapd::start()
{
    if (pid_ != 0)
        return;
    std::string listeners = ldap_uri() + "/ " + ldapi_uri();
    if (setup_.tls)
        listeners += " " + ldaps_uri() + "/";
    const std::string log_file = (dir_.path() / "slapd.log").string();
    const std::string config = config_dir().string();
    std::vector<std::string> words{slapd_program, "-d", "0", "-h", listeners, "-F", config, "-u", "openldap",
                                   "-g", "openldap"};
    std::vector<char*> argv;
    for (auto& word : words)
        argv.push_back(word.data());
    argv.push_back(nullptr);

    const pid_t child = ::fork();
    if (child < 0)
        throw std::runtime_error(std::string("test slapd: fork: ") + std::strerror(errno));
    if (child == 0) {
        ::setpgid(0, 0);
        const int null = ::open("/dev/null", O_RDONLY);
        const int out = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        ::dup2(null, 0);
        ::dup2(out, 1);
        ::dup2(out, 2);
        ::execv(slapd_program, argv.data());
        ::_exit(127);
    }
    pid_ = child;
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = 0;
            throw std::runtime_error("test slapd exited at start: " + log());
        }
        if (answering())
            return;
        std::this_thread::sleep_for(20ms);
    }
    stop();
    throw std::runtime_error("test slapd does not answer after 10 s: " + log());
}

void test_slapd::stop()
{
    if (pid_ == 0)
        return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + 5s;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() >= until) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    pid_ = 0;
}

int test_slapd::run_tool(const std::string& tool, std::vector<std::string> args, const std::string& ldif,
                         std::string* output) const
{
    args.insert(args.begin(), {"-H", ldapi_uri()});
    if (!ldif.empty()) {
        const std::string file = dir_.write("input-" + std::to_string(::getpid()) + ".ldif", ldif);
        args.insert(args.end(), {"-f", file});
    }
    msg::child_command command;
    command.program = tool;
    command.args = std::move(args);
    command.max_output_bytes = 1 << 20;
    const auto run = msg::run_child(command, msg::deadline::after(60s));
    if (output != nullptr)
        *output = run.out + run.err;
    return run.exit_code.value_or(-1);
}

int test_slapd::modify_config(const std::string& ldif, std::string* output) const
{
    return run_tool("ldapmodify", {"-Q", "-Y", "EXTERNAL"}, ldif, output);
}

int test_slapd::write_as_root(const std::string& ldif, std::string* output) const
{
    return run_tool("ldapmodify", {"-c", "-x", "-D", root_dn, "-y", password_file().string()}, ldif, output);
}

} // namespace msg_test
