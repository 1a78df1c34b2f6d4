/*  adm - crm-admin subcommands (one file per family, like git's builtin/) */
#ifndef ADM_H
#define ADM_H

int adm_init(int argc, char **argv);
int adm_user(int argc, char **argv);
int adm_check(int argc, char **argv);
int adm_grep(int argc, char **argv);
int adm_upgrade(int argc, char **argv);
int adm_sweep(int argc, char **argv);
int adm_rules(int argc, char **argv);
int adm_backup(int argc, char **argv);
int adm_restore(int argc, char **argv);
int adm_status(int argc, char **argv);
int adm_digest(int argc, char **argv);
int adm_replica(int argc, char **argv);
int adm_promote(int argc, char **argv);
int adm_unfence(int argc, char **argv);

#endif
