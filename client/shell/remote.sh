# The remote half of `rexec shell` when the shell is /bin/sh (the account's
# login shell is not bash, or `rexec shell --sh`): POSIX sh only, as dash has
# it. It works as remote.bash does (read that first), with what sh lacks:
#
# - no PROMPT_COMMAND; and a line cut short (Ctrl-C, or an error such as a
#   syntax error in eval, ${X?} or `set -u`) makes dash drop what it had read
#   ahead, the __rexec_done line among them. So PS1 is a hook (dash expands
#   its prompts, command substitution included) that, at the top level with a
#   line still running, sends "top SEQ": the client then sends __rexec_done
#   again (which does its work once for each nonce). The user's PS1 and PS2
#   are kept aside and never shown: rexec draws its own prompt;
# - no $_, no history, no arrays: the line's $? is all that is given back;
# - only descriptors 0-9: the output markers go to 9 and 8, checked against
#   1 and 2 (see __rexec_mark_fds), not to spare copies high up;
# - the state snapshot holds what sh can print as text (options, variables,
#   exported names, traps, umask, aliases), not functions: a new shell made
#   from it has no functions.

__rexec_s_flags=aeuvx
__rexec_s_live=1

# __rexec_send RECORD and __rexec_state_head SEQ are made by __rexec_keep_key.

# Makes the functions that write records with KEY, the session's key, in
# their text: sh has no way to print a function's text (`set` shows
# variables only), so no command of the user's sees it, as it would a
# variable; nor is it exported, in a file or a descriptor (which any process
# of the account opens through /proc). KEY is hex: it is safe in the text.
# A record is one write: nothing another writer puts in the pipe lands in it.
__rexec_keep_key() {
    case $1 in '' | *[!0-9a-f]*) return 1 ;; esac
    eval "__rexec_send() { printf '\\000$1 %s\\000' \"\$1\" 2>/dev/null >|\"\$__rexec_s_ctl\"; }
__rexec_state_head() { printf '\\000$1 state %s\\n' \"\$1\"; }"
}

__rexec_resume() {
    if [ "$1" != 0 ]; then __rexec_settings; fi
    return "$1"
}

__rexec_settings() {
    if [ -n "$__rexec_u_flags" ]; then set "-$__rexec_u_flags"; fi
    __rexec_s_live=1
    return 0
}

# PS1, expanded in a subshell at each prompt (see the top).
__rexec_top() {
    if [ -n "$__rexec_s_running" ]; then
        __rexec_send "top $__rexec_s_running"
    fi
}

__rexec_pre() {
    if [ "$2" != run ] && ! __rexec_is_complete "$4"; then
        if [ "$2" = check ]; then
            __rexec_send "more $1"
            return 1
        fi
        printf '%s\n' "$__rexec_s_value" >&2
        __rexec_s_status=2 __rexec_s_report=$1
        return 1
    fi
    __rexec_s_in=$3
    __rexec_s_running=$1
    __rexec_s_cmd="__rexec_resume $__rexec_s_status 2>/dev/null && __rexec_settings 2>/dev/null
$4"
    if [ "$2" != force ]; then
        __rexec_s_cmd="$__rexec_s_cmd"'
{ __rexec_end "$?"; } 2>/dev/null'
    fi
    case $__rexec_u_flags in *v*) printf '%s\n' "$4" >&2 ;; esac
    return 0
}

# Whether TEXT is a complete command, by sh -n (its message left in
# __rexec_s_value). dash runs a here-document ended by the end of the text
# without a word, so only quotes and compound commands can be unfinished.
__rexec_is_complete() {
    __rexec_s_value=$(printf '%s\n' "$1" | LC_ALL=C /bin/sh -n 2>&1)
    case $__rexec_s_value in
        *"end of file unexpected"* | *"Unterminated quoted string"* | *"unexpected end of file"* | *"unexpected EOF"*) return 1 ;;
    esac
    return 0
}

__rexec_end() {
    __rexec_s_status=$1
    __rexec_s_report=$__rexec_s_running
    __rexec_s_running=
    if [ -z "$__rexec_s_live" ]; then return 0; fi
    __rexec_s_live=
    __rexec_u_flags=
    for __rexec_s_flag in a e u v x; do
        case $- in *"$__rexec_s_flag"*) __rexec_u_flags=$__rexec_u_flags$__rexec_s_flag ;; esac
    done
    if [ -n "$__rexec_u_flags" ]; then set "+$__rexec_u_flags"; fi
    __rexec_keep_prompts
}

# The user's prompts, if a line set them, kept aside for good.
__rexec_keep_prompts() {
    if [ "${PS1-}" != '$(__rexec_top)' ]; then __rexec_u_ps1=${PS1-}; fi
    if [ -n "${PS2-}" ]; then __rexec_u_ps2=$PS2; fi
    PS1='$(__rexec_top)' PS2=
}

__rexec_done() {
    __rexec_finish "$?" "$2"
}

__rexec_finish() {
    if [ -n "$__rexec_s_running" ]; then __rexec_end "$1"; fi
    if [ -n "$2" ] && [ "$2" != "$__rexec_s_done" ]; then __rexec_s_nonce=$2 __rexec_s_done=$2; fi
    if [ -n "$__rexec_s_report" ]; then __rexec_report; fi
    if [ -n "$__rexec_s_nonce" ]; then
        __rexec_mark "$__rexec_s_nonce"
        __rexec_s_nonce=
        if [ -n "$__rexec_s_snapshot" ]; then
            __rexec_snapshot "$__rexec_s_snapshot"
            __rexec_s_snapshot=
        fi
    fi
}

# The end of the line's output on each stream (MARKER): where
# __rexec_mark_fds found the session's stdout and stderr.
__rexec_mark() {
    if [ -n "$__rexec_s_outfd" ]; then printf '\000%s' "$1" >&"$__rexec_s_outfd"; fi
    if [ -n "$__rexec_s_errfd" ]; then printf '\000%s' "$1" >&"$__rexec_s_errfd"; fi
}

# Where the session's stdout and stderr are, in __rexec_s_outfd and
# __rexec_s_errfd: on 9 and 8, the copies kept since __rexec_begin, while
# each is the same file as 1 and 2 (here, at the top level, the session's
# pipes unless a line moved them); else on whichever descriptor is that pipe
# (readlink against its name kept at the start: forks only then), as after
# `exec 9>lockfile` or `exec 3>&1 >file`: never into a file or FIFO of the
# user's. Empty when this shell holds the pipe on none: the status record then
# names the stream after the status (__rexec_s_unmarked), and the client
# waits for no marker there.
__rexec_mark_fds() {
    __rexec_s_unmarked=
    __rexec_find_fd 9 1 "$__rexec_s_outpipe" stdout
    __rexec_s_outfd=$__rexec_s_fd
    __rexec_find_fd 8 2 "$__rexec_s_errpipe" stderr
    __rexec_s_errfd=$__rexec_s_fd
}

# __rexec_find_fd FD SAME PIPE NAME: see __rexec_mark_fds; in __rexec_s_fd.
__rexec_find_fd() {
    if [ "/dev/fd/$1" -ef "/dev/fd/$2" ] && [ -p "/dev/fd/$1" ]; then
        __rexec_s_fd=$1
        return
    fi
    for __rexec_s_fd in $1 1 2 3 4 5 6 7 8 9 0; do
        if [ -p "/dev/fd/$__rexec_s_fd" ] &&
            [ "$(readlink "/proc/$$/fd/$__rexec_s_fd" 2>/dev/null)" = "$3" ]; then
            return
        fi
    done
    __rexec_s_fd= __rexec_s_unmarked="$__rexec_s_unmarked $4"
}

__rexec_report() {
    __rexec_mark_fds
    __rexec_send "status $__rexec_s_report
$__rexec_s_status$__rexec_s_unmarked
$PWD"
    __rexec_s_snapshot=$__rexec_s_report __rexec_s_report=
}

__rexec_snapshot() {
    {
        __rexec_state_head "$1"
        printf '%s setopts\n' "$__rexec_s_mark"
        set +o
        printf '%s vars\n' "$__rexec_s_mark"
        set
        printf '%s exports\n' "$__rexec_s_mark"
        export -p
        printf '%s traps\n' "$__rexec_s_mark"
        trap
        printf '%s umask\n' "$__rexec_s_mark"
        umask
        printf '%s aliases\n' "$__rexec_s_mark"
        alias
        printf '%s end\n\000' "$__rexec_s_mark"
    } 2>/dev/null >|"$__rexec_s_ctl"
}

# __rexec_escape NAME: NAME with \ and newline written as \\ and \n, in
# __rexec_s_path (a candidate is one line; see remote.bash).
__rexec_escape() {
    __rexec_s_rest=$1 __rexec_s_path=
    while [ -n "$__rexec_s_rest" ]; do
        __rexec_s_char=${__rexec_s_rest%"${__rexec_s_rest#?}"}
        __rexec_s_rest=${__rexec_s_rest#?}
        case $__rexec_s_char in
            '\') __rexec_s_char='\\' ;;
            '
') __rexec_s_char='\n' ;;
        esac
        __rexec_s_path=$__rexec_s_path$__rexec_s_char
    done
}

# Tab completion: paths only (sh can't list its commands or variables).
__rexec_complete() {
    __rexec_s_value="complete $1"
    if [ "$2" != variable ]; then
        case $3 in "~/"*) __rexec_s_glob=$HOME/${3#"~/"} ;; *) __rexec_s_glob=$3 ;; esac
        for __rexec_s_path in "$__rexec_s_glob"*; do
            if [ -d "$__rexec_s_path" ]; then
                __rexec_s_path=$__rexec_s_path/
            elif ! [ -e "$__rexec_s_path" ] && ! [ -L "$__rexec_s_path" ]; then
                continue
            fi
            case $3 in "~/"*) __rexec_s_path="~/${__rexec_s_path#"$HOME/"}" ;; esac
            case $__rexec_s_path in *'\'* | *'
'*) __rexec_escape "$__rexec_s_path" ;; esac
            __rexec_s_value="$__rexec_s_value
$__rexec_s_path"
        done
    fi
    __rexec_send "$__rexec_s_value"
}

__rexec_begin() {
    exec 1>&4 2>&3 3>&- 4>&- 9>&1 8>&2
    __rexec_s_ctl=$1 __rexec_s_mark=$2
    __rexec_keep_key "$3"
    __rexec_s_running= __rexec_s_report= __rexec_s_nonce= __rexec_s_snapshot= __rexec_s_status=0
    __rexec_s_outpipe=$(readlink "/proc/$$/fd/9") __rexec_s_errpipe=$(readlink "/proc/$$/fd/8")
    __rexec_s_outfd=9 __rexec_s_errfd=8
}

__rexec_s_login='if [ -r /etc/profile ]; then . /etc/profile; fi
if [ -r "$HOME/.profile" ]; then . "$HOME/.profile"; fi'

__rexec_restored() {
    __rexec_s_value=$OLDPWD
    if ! cd -- "$PWD" 2>/dev/null; then
        __rexec_send "warning 0
the directory $PWD is gone; the shell is in ${HOME:-/} instead"
        cd -- "${HOME:-/}" 2>/dev/null || cd /
    fi
    OLDPWD=$__rexec_s_value
    __rexec_s_status=$1 __rexec_s_live=
    __rexec_keep_prompts
}

__rexec_ready() {
    __rexec_keep_key "$1"
    __rexec_s_running=ready
    __rexec_end "$__rexec_s_status"
    __rexec_s_report=
    __rexec_send "ready 0
sh
$(id -un 2>/dev/null)
$(uname -n 2>/dev/null | cut -d. -f1)
${HOME-}
$PWD"
    __rexec_s_snapshot=0
    __rexec_finish 0 "$2"
}

__rexec_leave() {
    __rexec_settings
    exit "$1" 2>/dev/null
}
