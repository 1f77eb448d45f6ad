/**
 * `az` commands printed as advice, runnable as printed: the assignee is the signed-in user's object id and the
 * scope the workspace's resource id, looked up by `az` when troubleshoot knows only the workspace id (GUID).
 */
export function readerRoleCommand(role: string, workspaceId: string, workspaceResourceId?: string): string {
  const scope = workspaceResourceId ?? `$(az monitor log-analytics workspace list --query "[?customerId=='${workspaceId}'].id" -o tsv)`;
  return `az role assignment create --role "${role}" --assignee "$(az ad signed-in-user show --query id -o tsv)" --scope "${scope}"`;
}
